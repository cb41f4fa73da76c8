// The page an account without the role sees: nothing to load.
