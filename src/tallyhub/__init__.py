"""TallyHub: exact, instantly readable statistics for growth-operations teams."""

__version__ = "0.1.0"
