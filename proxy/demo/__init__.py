"""`assistants-audit demo`: the emulator, the proxy and a scripted SDK workload."""
