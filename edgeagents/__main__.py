from edgeagents.cli import main

main()
