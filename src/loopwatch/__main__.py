from loopwatch.cli.main import main

main()
