"""The Open Inference Protocol (V2, REST) that KServe, Triton and Seldon MLServer speak."""
