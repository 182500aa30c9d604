"""One module per strategy: its Config, class and paper reference."""
