"""The run lifecycle in the parent: queue, schedule, spawn and follow the child, record the end."""
