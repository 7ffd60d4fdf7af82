"""`python -m facenet_mtl`: the facenet-mtl command line."""
from facenet_mtl.cli import main

main()
