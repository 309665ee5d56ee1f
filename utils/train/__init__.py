"""The training engine and everything around one run: losses, optimizers, logging, distillation, resume checks."""
