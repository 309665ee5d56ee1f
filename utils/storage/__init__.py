"""What a run keeps on disk: atomic files and JSON, the checkpoint schema, the run folder."""
