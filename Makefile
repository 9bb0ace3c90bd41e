# automix: `make demo` (set up + mix the bundled example), `make test` (set up + run the tests).
# The venv step runs once: a stamp file records a finished install, and torch is only installed
# when the venv cannot import it yet (so an existing .venv keeps its torch).

PYTHON ?= python3
# Idle OpenMP threads spin on a busy 2-core machine (measured 2-50x slowdowns in small torch ops).
export OMP_WAIT_POLICY ?= PASSIVE
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check --quiet
STAMP := $(VENV)/.automix-installed

# Pinned for this project's CI machine (CPU); pyproject.toml keeps loose ranges for other builds.
TORCH_PINS := torch==2.14.1 torchaudio==2.11.0

# --- APT_PACKAGES: system packages the tests need (e.g. fluidsynth, mma, soundfonts). Filled in by the lead.
APT_PACKAGES := fluidsynth fluid-soundfont-gm musescore-general-soundfont-small timgm6mb-soundfont \
	avldrums.lv2-soundfont mma openttd-openmsx libopenmpt0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv demo test lint bench data data-real data-synth-balance example apt clean-venv train-mst train-dmc eval-models

venv: $(STAMP)

$(STAMP): pyproject.toml
	@echo "== setting up $(VENV) (first time: a few minutes, PyTorch is large)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch, torchaudio" 2>/dev/null || $(PIP) $(TORCH_PINS)
	$(PIP) setuptools wheel
	# torchcomp builds torchlpc from source; build isolation would pull a second torch.
	$(PY) -c "import torchcomp" 2>/dev/null || $(PIP) --no-build-isolation torchcomp
	$(PIP) --no-build-isolation -e '.[dev]'
	# Compile the audio kernels now (about 15 s, once) rather than inside the first mix.
	$(PY) -m automix.warmup
	touch $(STAMP)

demo: venv
	$(VENV)/bin/automix mix examples/stems -o demo/mix.wav --force

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

test: venv apt
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	$(PY) benchmarks/run_all.py

# --- data: the synthetic multitracks and the reference-song corpus (both resume if interrupted).
data: venv apt
	$(PY) -m automix data synth --out data/synth --songs 320 --seconds 30 --seed 1 --jobs 2
	$(PY) -m automix data refs --out data/refs
	touch data/synth.READY

# --- data-real: songs whose authors set every level and pan (tracker modules, MIDI, Hydrogen) from
# Debian packages, downloaded with apt-get download (resumes; docs/data-card.md has sizes and times).
data-real: venv apt
	$(PY) -m automix data real --out data/real --jobs 2

# The MMA arranger balances the forest also fits (automix/train/synthetic_balance.py).
data-synth-balance: venv apt
	$(PY) -m automix data synth --out data/synth-balance --songs 600 --seconds 20 --seed 1 --jobs 2

# --- example: regenerates the bundled example stems (same bytes every run).
example: venv apt
	$(PY) scripts/make_example.py --out examples

clean-venv:
	rm -rf $(VENV)

# --- training: reproduce the shipped checkpoints (after `make data`; hours on 2 CPU cores).
train-mst: venv
	$(PY) -m automix train --config configs/mst-small-m1.yaml
	$(PY) -m automix train --config configs/mst-small-m2.yaml
	cp runs/mst-m2/mst-small-best.safetensors checkpoints/mst-small.safetensors
	cp runs/mst-m2/mst-small-best.json checkpoints/mst-small.json

train-dmc: venv
	$(PY) -m automix train --config configs/dmc-small.yaml
	cp runs/dmc/dmc-small-best.safetensors checkpoints/dmc-small.safetensors
	cp runs/dmc/dmc-small-best.json checkpoints/dmc-small.json

# --- runs that train over several sessions (tcn-10, wave-u-net): the latest state is committed
# under checkpoints/state/NAME/. `make resume-NAME` restores it into runs/NAME/ (unless a newer
# run is there) and continues exactly where it stopped; `make save-NAME` copies the run's state
# back and ships its best weights as checkpoints/NAME.*.
resume-%: venv
	test -f configs/$*.yaml
	mkdir -p runs/$*
	if [ -f checkpoints/state/$*/state.pt ] && [ ! -f runs/$*/state.pt ]; then cp checkpoints/state/$*/* runs/$*/; \
		cp checkpoints/$*.safetensors runs/$*/$*-best.safetensors; cp checkpoints/$*.json runs/$*/$*-best.json; fi
	if [ -f runs/$*/state.pt ]; then $(PY) -m automix train --config configs/$*.yaml --resume; \
	else $(PY) -m automix train --config configs/$*.yaml; fi

save-%: venv
	$(PY) scripts/save_run.py $*

# --- held-out numbers quoted in the model cards
eval-models: venv
	$(PY) -m automix.train.heldout --mst checkpoints/mst-small --dmc checkpoints/dmc-small --count 48
