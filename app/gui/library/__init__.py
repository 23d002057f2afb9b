"""The library side of the window: the document list, and the controller that adds,
removes and shows documents."""
