"""Built-in stages, one per file, each registered under its YAML name."""
