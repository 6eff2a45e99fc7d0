"""The AWS side of the tool: where the stack lives, the outputs file, AWS refusals as one line."""
