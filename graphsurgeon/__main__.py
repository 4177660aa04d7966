from graphsurgeon.cli import entry

entry()
