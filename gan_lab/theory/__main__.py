from gan_lab.theory import main

main()
