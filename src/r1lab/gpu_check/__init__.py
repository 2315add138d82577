"""`make gpu-check`: r1lab's GPU path proven in one offline command (docs/GPU_CHECK.md).

Each part is a separate process with its own time limit, so one failure or hang cannot take the others down;
`runner` runs and reports them, `parts` declares them, `install` puts r1lab and the carried wheels into the
machine's own Python without a network.
"""
