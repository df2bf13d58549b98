"""Benchmarks: ms per image for the network alone and end to end, and the results' schema.

- :mod:`~cartoonkit.bench.variants`: the named engine configurations (``VARIANTS``, ``DEFAULT_VARIANTS``);
- :mod:`~cartoonkit.bench.results`: the typed schema of a result (``BenchResult``, ``BenchRow``,
  ``CompoundRow``), read leniently from JSON, and ``format_table``;
- :mod:`~cartoonkit.bench.run`: the measurements (``run_benchmarks``, ``model_grid``, ``bench_*``);
- :mod:`~cartoonkit.bench.memory`: ``PeakMemory``; :mod:`~cartoonkit.bench.images`: ``square_photo``, ``psnr``;
- :mod:`~cartoonkit.bench.peak`: ``measure_peak``, the device's matmul rate per precision and copy bandwidth, measured
  in the run, against which each model row's achieved TFLOP/s is a share;
- :mod:`~cartoonkit.bench.peers`: the peers, other ways to run the network (the naive PIL + eager pipeline,
  ONNX Runtime, OpenVINO, TFLite, TensorRT on CUDA) behind one ``run``.

Import names from their module. This package, ``variants`` and ``results`` import no torch (``cartoonkit
--help`` lists the variants, the dashboard reads results); ``run``, ``memory``, ``images``, ``peak`` and ``peers`` do.
"""
