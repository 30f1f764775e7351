# The project's entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO      ?= cargo
VENV       := $(CURDIR)/.venv
PYTHON     ?= python3
REQS       := tools/requirements.txt
VENV_STAMP := $(VENV)/.installed-$(shell sha1sum $(REQS) | cut -c1-12)
# The infrastructure validators: cfn-lint and checkov in their own venv (checkov's dependencies
# clash with moto's), asl-validator and statelint from npm under infra/node_modules.
VENV_INFRA       := $(CURDIR)/.venv-infra
INFRA_REQS       := tools/infra-requirements.txt
INFRA_STAMP      := $(VENV_INFRA)/.installed-$(shell sha1sum $(INFRA_REQS) | cut -c1-12)
INFRA_NPM_STAMP  := infra/node_modules/.installed-$(shell sha1sum infra/package-lock.json | cut -c1-12)
# The package build and the SAM checks: aws-sam-cli, cargo-lambda and zig in their own venv.
VENV_SAM  := $(CURDIR)/.venv-sam
SAM_REQS  := tools/sam-requirements.txt
SAM_STAMP := $(VENV_SAM)/.installed-$(shell sha1sum $(SAM_REQS) | cut -c1-12)
# sam finds cargo-lambda, and cargo-lambda finds zig (python -m ziglang), on this PATH.
SAM       := PATH=$(VENV_SAM)/bin:$$PATH SAM_CLI_TELEMETRY=0 $(VENV_SAM)/bin/sam
PACKAGE_DIR := target/package
SAMCONFIG   ?= infra/samconfig.toml

# Tests find the project's tools through these.
export AWS_CLI := $(VENV)/bin/aws
export VENV
export CARGO_TERM_COLOR ?= never

NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV_STAMP): $(REQS)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r $(REQS)
	@rm -f $(VENV)/.installed-* && touch $@

.PHONY: tools
tools: $(VENV_STAMP) ## install the pinned Python tools into .venv

$(INFRA_STAMP): $(INFRA_REQS)
	@test -x $(VENV_INFRA)/bin/python || $(PYTHON) -m venv $(VENV_INFRA)
	$(VENV_INFRA)/bin/pip install --quiet --disable-pip-version-check -r $(INFRA_REQS)
	@rm -f $(VENV_INFRA)/.installed-* && touch $@

$(SAM_STAMP): $(SAM_REQS)
	@test -x $(VENV_SAM)/bin/python || $(PYTHON) -m venv $(VENV_SAM)
	$(VENV_SAM)/bin/pip install --quiet --disable-pip-version-check -r $(SAM_REQS)
	@rm -f $(VENV_SAM)/.installed-* && touch $@

$(INFRA_NPM_STAMP): infra/package.json infra/package-lock.json
	npm ci --prefix infra --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: infra-lint
infra-lint: $(INFRA_STAMP) $(INFRA_NPM_STAMP) $(SAM_STAMP) ## sam validate --lint, cfn-lint, checkov, asl-validator and statelint on infra/
	VENV_INFRA=$(VENV_INFRA) VENV_SAM=$(VENV_SAM) tools/validate-infra

# sam build runs `cargo lambda build --release --arm64` in each function's crate (the template's
# BuildMethod rust-cargolambda); the zips are what Lambda runs, one bootstrap each.
# No --beta-features: rust-cargolambda left SAM's beta (aws-sam-cli PR 8526, December 2025); the pinned 1.170.0 builds it without a prompt, and the flag would turn on every other beta feature.
.PHONY: package
package: $(SAM_STAMP) ## sam build: the four functions for arm64, zipped into target/package/<function>.zip
	$(SAM) build --template infra/template.yaml --build-dir .aws-sam/build
	$(VENV_SAM)/bin/python tools/zip-functions .aws-sam/build $(PACKAGE_DIR)

.PHONY: deploy
deploy: package ## sam deploy of the hub stack with $(SAMCONFIG) (copy infra/samconfig.example.toml; docs/deploy.md)
	@test -f $(SAMCONFIG) || { echo "deploy: $(SAMCONFIG) is missing: copy infra/samconfig.example.toml to it and fill in its parameters (docs/deploy.md)" >&2; exit 2; }
	$(SAM) deploy --template-file .aws-sam/build/template.yaml --config-file $(abspath $(SAMCONFIG))

# restartctl's report test renders its HTML page in headless Chromium (Debian's package).
.PHONY: chromium
chromium: ## install Debian's chromium when /usr/bin/chromium is missing
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium; }

.PHONY: fmt
fmt: ## format the code
	$(CARGO) fmt --all

.PHONY: lint
lint: ## rustfmt check, clippy with -D warnings, the crate boundaries (tools/check-boundaries)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	CARGO=$(CARGO) tools/check-boundaries

.PHONY: test
test: lint tools infra-lint chromium ## lint, then every test (unit, property, integration against fleet-sim, AWS CLI checks)
	$(CARGO) test --workspace --locked --doc
ifeq ($(NEXTEST),yes)
	tools/with-moto $(CARGO) nextest run --workspace --locked --no-fail-fast
else
	tools/with-moto $(CARGO) test --workspace --locked --no-fail-fast
endif

# A night of crates/fleet-sim/fleets/chaos.yaml and on-call's commands under the templates' IAM.
.PHONY: iam-check
iam-check: tools ## every request of a local night and of on-call's commands authorized under infra/'s IAM (docs/iam.md)
	$(CARGO) run --quiet --locked -p local-stack --bin iam-check

# The race simulation (crates/restarter/tests/races.rs): `make test` runs 500 seeds; a soak runs
# seeds 0..SEEDS with progress every SOAK_PROGRESS seeds. A failing seed prints itself and replays
# with SIM_SEED=<seed>.
SEEDS         ?= 10000
SOAK_PROGRESS ?= 1000
.PHONY: soak
soak: ## the race simulation over SEEDS seeds (default 10000), with progress; figures in docs/reliability.md
	SIM_SEEDS=$(SEEDS) SIM_PROGRESS=$(SOAK_PROGRESS) $(CARGO) test --locked -p restarter --test integration races:: -- --nocapture

.PHONY: bench
bench: tools ## run the benchmarks (BENCH_FLEET=100k: 100,000 services; figures in docs/performance.md)
	tools/with-moto $(CARGO) bench --workspace --locked

# A 4-minute night: 13 batches 15 s apart, each restart timing out after 1 minute (see
# crates/local-stack/README.md, "Compressing a night"), with the guards of docs/design.md 3.3
# on the demo fleet's change calendar and blocking alarm (examples/demo-fleet.yaml's header).
# The HTML report shows where the night's time went (from its X-Ray traces, which land beside
# the JSON report: target/demo-report.traces.json).
DEMO_WINDOW ?= 240
DEMO_JSON   := target/demo-report.json
DEMO_HTML   := target/demo-report.html
.PHONY: demo
demo: ## one night of examples/demo-fleet.yaml (50 accounts, 2,000 services) through the local stack, in DEMO_WINDOW seconds; reports in target/
	@mkdir -p target
	@test -f $(VENV_STAMP) || echo "demo: installing the pinned Python tools (moto, the AWS CLI) into .venv (first run only: a minute or two)..."
	@$(MAKE) -s --no-print-directory tools
	@echo "demo: building the local stack, restart-local (a few minutes on a first build; cargo names each crate it compiles)..."
	$(CARGO) build --locked -p local-stack --bin restart-local
	@echo "demo: running one night of examples/demo-fleet.yaml in a $(DEMO_WINDOW)-second window (moto, fleet-sim and the four functions start first)..."
	$(CARGO) run --quiet --locked -p local-stack --bin restart-local -- run --fleet examples/demo-fleet.yaml --window-seconds $(DEMO_WINDOW) --change-calendar ecs-restart-freeze --blocking-alarm-prefix ecs-restart-block- --report-json $(DEMO_JSON) --report-html $(DEMO_HTML)

.PHONY: clean
clean: ## remove build output and the tool environment
	$(CARGO) clean
	rm -rf $(VENV) $(VENV_INFRA) $(VENV_SAM) .aws-sam infra/node_modules

# The command-line tools as a versioned archive, for a laptop or a bastion without a checkout:
# target/dist/ecs-nightly-restart-<version>-<target>.tar.gz (and its .sha256) with
# bin/restartctl and bin/restart-local (release builds), restartctl's shell completions
# (completions/: bash, zsh, fish, elvish, powershell), README.md, LICENSE and CHANGELOG.md.
# The binaries lose their debug info (`strip --strip-debug`: about 28 MB instead of 200 for
# restartctl) and keep their symbols, so a panic's backtrace still names functions.
# <version> is the workspace's (Cargo.toml's [workspace.package]). DIST_TARGETS defaults to this
# machine's target; another one needs its standard library (`rustup target add T`) and a linker
# for it (CARGO_TARGET_<T>_LINKER, e.g. aarch64-linux-gnu-gcc for aarch64-unknown-linux-gnu).
# After writing each archive the recipe unpacks it and checks its contents; for this machine's
# target it also runs both binaries' --version and expects the workspace version.
DIST_VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
DIST_HOST    := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
DIST_TARGETS ?= $(DIST_HOST)
DIST_BUILD   := $(or $(CARGO_TARGET_DIR),target)
DIST_DIR     := target/dist
.PHONY: dist
dist: ## release archives of restartctl and restart-local with completions: target/dist/ecs-nightly-restart-VERSION-TARGET.tar.gz (DIST_TARGETS; default this machine's)
	@set -euo pipefail; \
	test -n "$(DIST_VERSION)" || { echo "dist: no version in Cargo.toml" >&2; exit 2; }; \
	mkdir -p $(DIST_DIR); \
	for t in $(DIST_TARGETS); do \
		if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$$t"; then \
			echo "dist: the Rust target $$t is not installed: rustup target add $$t (and a linker for it: CARGO_TARGET_<T>_LINKER)" >&2; exit 2; \
		fi; \
		echo "dist: building restartctl and restart-local $(DIST_VERSION) for $$t (release)"; \
		if [ "$$t" = "$(DIST_HOST)" ]; then out=$(DIST_BUILD)/release; target=; \
		else out=$(DIST_BUILD)/$$t/release; target="--target $$t"; fi; \
		$(CARGO) build --release --locked $$target -p restartctl -p local-stack --bin restartctl --bin restart-local; \
		name=ecs-nightly-restart-$(DIST_VERSION)-$$t; \
		stage=$$(mktemp -d); trap 'rm -rf "$$stage"' EXIT; \
		mkdir -p $$stage/$$name/bin $$stage/$$name/completions; \
		cp $$out/restartctl $$out/restart-local $$stage/$$name/bin/; \
		for b in $$stage/$$name/bin/*; do \
			strip --strip-debug $$b 2>/dev/null || echo "dist: $$(basename $$b) keeps its debug info (strip cannot read $$t)"; \
		done; \
		cp README.md LICENSE CHANGELOG.md $$stage/$$name/; \
		if [ "$$t" != "$(DIST_HOST)" ]; then \
			$(CARGO) build --release --locked -p restartctl --bin restartctl; \
			gen=$(DIST_BUILD)/release/restartctl; \
		else gen=$$out/restartctl; fi; \
		$$gen completions bash > $$stage/$$name/completions/restartctl.bash; \
		$$gen completions zsh > $$stage/$$name/completions/_restartctl; \
		$$gen completions fish > $$stage/$$name/completions/restartctl.fish; \
		$$gen completions elvish > $$stage/$$name/completions/restartctl.elv; \
		$$gen completions powershell > $$stage/$$name/completions/_restartctl.ps1; \
		tar -C $$stage --sort=name --owner=0 --group=0 --numeric-owner -czf $(DIST_DIR)/$$name.tar.gz $$name; \
		(cd $(DIST_DIR) && sha256sum $$name.tar.gz > $$name.tar.gz.sha256); \
		rm -rf $$stage/$$name; \
		tar -C $$stage -xzf $(DIST_DIR)/$$name.tar.gz; \
		for f in bin/restartctl bin/restart-local completions/restartctl.bash completions/_restartctl \
			completions/restartctl.fish completions/restartctl.elv completions/_restartctl.ps1 \
			README.md LICENSE CHANGELOG.md; do \
			test -s $$stage/$$name/$$f || { echo "dist: $$name.tar.gz lacks $$f" >&2; exit 1; }; \
		done; \
		grep -q -- '--nightly' $$stage/$$name/completions/restartctl.bash || { echo "dist: the bash completions lack trigger's flags" >&2; exit 1; }; \
		if [ "$$t" = "$(DIST_HOST)" ]; then \
			for b in restartctl restart-local; do \
				v=$$($$stage/$$name/bin/$$b --version); \
				test "$$v" = "$$b $(DIST_VERSION)" || { echo "dist: $$b --version says '$$v', not '$$b $(DIST_VERSION)'" >&2; exit 1; }; \
				echo "dist: $$v"; \
			done; \
		else echo "dist: $$t binaries not run here (built for another machine)"; fi; \
		rm -rf $$stage; trap - EXIT; \
		echo "dist: $(DIST_DIR)/$$name.tar.gz"; \
	done
