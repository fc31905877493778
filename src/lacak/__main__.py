from lacak.cli import main

main()
