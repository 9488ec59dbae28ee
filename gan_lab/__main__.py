from gan_lab.cli import main

main()
