"""The long-lived process: composition root, scheduling, metrics and health over HTTP."""
