from ecgcnn.cli import main

main()
