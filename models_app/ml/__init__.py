"""Pure machine-learning code shared by the live system and the simulation.

Nothing in this package imports Django: functions take and return arrays or plain data, so the
simulation (`active_learning.simulation`) and the workers run exactly the same code.
"""
