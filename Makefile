# Every target sets up what it needs on first use: the virtual environment (.venv) and the
# default model (converted into models/ from ../shared/models or downloaded, sha256 checked).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODEL  := models/whitebox.json

.PHONY: demo run test bench lint readme-figure notebooks lab gpu-assets clean

demo: $(MODEL)  ## cartoonize the sample portraits into out/
	$(BIN)/cartoonkit demo -o out --overwrite

run: $(MODEL)  ## the Streamlit dashboard on http://localhost:8501
	$(BIN)/streamlit run streamlit_app.py --server.port 8501 --server.headless true

test: $(MODEL)  ## the whole test suite (what CI runs)
	$(BIN)/python -m pytest -q

bench: $(MODEL)  ## baseline benchmark on this machine, JSON in bench-results/
	$(BIN)/cartoonkit bench --resolutions 512 1024 --json bench-results/$(shell hostname).json

lint: $(STAMP)
	$(BIN)/ruff check cartoonkit tests

readme-figure: $(MODEL)  ## regenerate docs/before_after.jpg from the astronaut portrait
	$(BIN)/python -m cartoonkit.analysis docs/before_after.jpg

notebooks: $(MODEL)  ## execute every notebook into HTML in out/notebooks/ (CARTOONKIT_QUICK=1 for a quick pass)
	$(BIN)/jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=1800 --output-dir out/notebooks notebooks/*.ipynb

lab: $(MODEL)  ## JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks

gpu-assets: $(STAMP)  ## .gpu-assets/ for benchmarks/gpu-check.sh on a GPU machine: ../shared copied, the tflite and PyAV wheels
	rm -rf .gpu-assets && mkdir -p .gpu-assets/shared .gpu-assets/wheels
	cp -r ../shared/models ../shared/images ../shared/videos .gpu-assets/shared/
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: -d .gpu-assets/wheels tflite==2.18.0
	# PyAV for the video step, this venv's version, for the GPU image's Python 3.12 (an abi3 wheel, about 36 MB)
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .gpu-assets/wheels \
		"av==$$($(BIN)/python -c 'import av; print(av.__version__)')"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(MODEL): $(STAMP)
	$(BIN)/cartoonkit models install whitebox
	$(BIN)/cartoonkit models install yunet

clean:
	rm -rf $(VENV) out bench-results .pytest_cache
