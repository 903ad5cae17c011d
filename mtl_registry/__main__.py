from mtl_registry.cli import main

main()
