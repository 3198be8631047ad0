"""Video: reading, writing, optical flow and temporally consistent stylisation."""
