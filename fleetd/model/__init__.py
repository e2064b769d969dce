"""Pure data: unit files, names, requirements, states and machines. No I/O, no asyncio."""
