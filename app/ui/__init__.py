"""Shared page parts, one module per concern; pages import the modules they use.

state: session and URL state (links, seeded inputs). chrome: page frame, figures, errors.
pickers: device, precision and model choice. inputs: text boxes and their checks.
running: loading models and analysing text, with messages in the page.
"""
