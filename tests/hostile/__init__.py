"""The hostile-input corpus: bad, odd and valid-but-strange inputs every entry point must survive."""
