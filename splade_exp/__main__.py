from splade_exp.cli import main

main()
