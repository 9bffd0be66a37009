"""The pipeline's stages, one module each: a pure function over a typed record plus a thin
Celery task around it."""
