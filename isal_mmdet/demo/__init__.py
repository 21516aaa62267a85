"""Demo and test data (seeded synthetic shapes sets); not used by the plugin itself."""
