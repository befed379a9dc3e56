"""The guest in the terminal: open a deep link, see the bill and the cashback, pay, follow it."""
