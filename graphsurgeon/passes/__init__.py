"""The rewrites and reports behind the editor's verbs, one module each."""
