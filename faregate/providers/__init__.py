"""Wire protocols of upstream providers: pure translation, no I/O."""
