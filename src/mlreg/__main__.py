from mlreg.cli import main

main()
