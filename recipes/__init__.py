"""Ready, tested patch recipes for real deployment problems (run from the repository root)."""
