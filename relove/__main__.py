from relove.cli import entry

entry()
