"""Quality limits of a planted ticket, shared by the tests that check a ticket does its task.

The ticket alone (host weights times the ticket mask, outputs divided by the output scale c)
must reach these on fresh samples; the random host around it must not.
"""

# Mean squared error ceilings of the regression tasks' tickets.
MSE_CEILING = {"relu": 1.25e-4, "helix": 4e-4, "teacher-w16": 1.25e-4}

# Test accuracy floors of the circle ticket: at depth 4 or more, and at the shallower depths,
# where fewer hidden layers leave a coarser piecewise-linear boundary.
CIRCLE_ACCURACY_FLOOR = 0.97
CIRCLE_ACCURACY_FLOOR_SHALLOW = 0.94

# Test accuracy floor of a classification teacher's ticket (the teacher itself; 1% of labels moved).
TEACHER_ACCURACY_FLOOR = 0.97
