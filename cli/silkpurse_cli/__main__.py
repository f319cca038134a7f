from silkpurse_cli.cli import main

main()
