import signal

# Until the recorder's loop installs its own handler: a Ctrl-C in the terminal reaches the whole
# process group, but the recorder must stop only after the workers drained; the supervisor says
# when by closing our standard input.
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)

from proxy.recording.process import main  # noqa: E402

main()
