from fleet.platform.cli import main

main()
