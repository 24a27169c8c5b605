from dashboards.cli import main

main()
