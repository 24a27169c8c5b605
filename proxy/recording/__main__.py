from proxy.recording.process import main

main()
