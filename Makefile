# infant-tissue developer entry points. Everything installs into ./.venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch on disk on the project machines; an unpinned torch pulls a multi-GB
# CUDA build. The Dockerfile installs a CUDA build instead. Override: make TORCH=torch==X test
TORCH  ?= torch==2.13.0

.PHONY: venv demo demo-bundle test lint benchmark clean

$(BIN)/.installed: pyproject.toml version
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

venv: $(BIN)/.installed

DEMO := demo-output

# Phantom BIDS dataset (and phantom stand-ins of the MNIInfant templates, for the cerebellum +
# brain-stem removal) -> participant -> group with the packaged demo bundle, on CPU.
demo: venv
	$(BIN)/infant-tissue make-phantoms $(DEMO)/bids --n-subjects 2 --seed 7 --shape 64 72 64 \
		--skull-stripped --overwrite --templateflow $(DEMO)/templateflow
	TEMPLATEFLOW_HOME=$(abspath $(DEMO)/templateflow) $(BIN)/infant-tissue $(DEMO)/bids \
		$(DEMO)/derivatives participant --skull-stripped --qc-norms $(DEMO)/bids/code/qc_norms.tsv \
		--device cpu --nprocs 2 --omp-nthreads 2 -w $(DEMO)/work
	$(BIN)/infant-tissue $(DEMO)/bids $(DEMO)/derivatives group
	@echo; echo "outputs: $(DEMO)/derivatives (per session: sub-*/ses-*/anat; cohort: group/)"
	@echo "reports: $(DEMO)/derivatives/sub-01_ses-01.html, $(DEMO)/derivatives/group/report.html"

# Rebuild the packaged demo bundle from scratch (phantoms -> 3 training runs -> fine-tuning of
# each -> fuse -> held-out Dice).
demo-bundle: venv
	rm -rf $(DEMO)/train && mkdir -p $(DEMO)/train
	$(BIN)/infant-tissue make-phantoms $(DEMO)/train/iseg --form iseg --n-subjects 8 --seed 100
	for seed in 0 1 2; do $(BIN)/infant-tissue train $(DEMO)/train/iseg \
		--out $(DEMO)/train/run$$seed --config infant_tissue/data/demo_training.yaml \
		--seed $$seed --folds 4 --fold $$seed --omp-nthreads 2 || exit 1; done
	for seed in 0 1 2; do $(BIN)/infant-tissue train $(DEMO)/train/iseg \
		--out $(DEMO)/train/tune$$seed --config infant_tissue/data/demo_finetune.yaml \
		--init-from $(DEMO)/train/run$$seed --seed $$seed --folds 4 --fold $$seed \
		--omp-nthreads 2 || exit 1; done
	$(BIN)/infant-tissue fuse $(DEMO)/train/tune0 $(DEMO)/train/tune1 $(DEMO)/train/tune2 \
		--out infant_tissue/data/bundles/demo --float16 --force --name demo-phantom-tiny \
		--description "Reduced-width DU-Net-MixACB trained on synthetic phantoms only. NOT FOR RESEARCH USE." \
		--licence "Synthetic-data demo model of infant-tissue (Apache-2.0); not for research use."
	$(BIN)/python benchmarks/demo_bundle.py infant_tissue/data/bundles/demo

test: venv
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check infant_tissue tests benchmarks
	$(BIN)/ruff format --check infant_tissue tests benchmarks

benchmark: venv
	$(BIN)/pytest -q -m benchmark

clean:
	rm -rf demo-output .pytest_cache build *.egg-info
