"""Generated demo data and test fixtures, kept apart from the real readers in `facenet_mtl.data`.

- `faces`: procedurally drawn faces whose pixels encode age, gender, emotion and smile;
- `native_layouts`: writers of each dataset's native on-disk layout (the readers' fixtures);
- `datasets`: `make_demo_data`, the demo datasets (`facenet-mtl demo-data DIR`).

This package reads `facenet_mtl.data` (the schema, image encoding); nothing in `data` imports it.
"""
