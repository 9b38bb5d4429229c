# BYOC: `make run` serves the app, `make test` runs every test tier.
# `make help` lists every target.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
NPM       ?= npm
BIN       := bin/byoc
PORT      ?= 3000
# Browser tests use CHROMIUM_PATH, or Debian's Chromium.
CHROMIUM  := $(or $(CHROMIUM_PATH),/usr/bin/chromium)
export BROWSERSLIST_IGNORE_OLD_DATA := 1
export GOFLAGS := -buildvcs=false

# With DATABASE_URL set, that database is used and no private cluster starts.
ifdef DATABASE_URL
WITH_DB :=
DB_START :=
else
WITH_DB := db/pg.sh with
DB_START := db/pg.sh start
endif

TEMPL_SOURCES := $(shell find views -name '*.templ' 2>/dev/null)
CSS_INPUTS    := $(TEMPL_SOURCES) $(shell find app/web -name '*.go' 2>/dev/null) app/catalog.go views/styles/input.css tailwind.config.js

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

## ---- Set-up ----

node_modules/.installed: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: deps
deps: node_modules/.installed ## Install npm packages (npm ci) and Go modules
	$(GO) mod download

.PHONY: generate
generate: ## Generate Go code from the templ components
	$(GO) tool templ generate -path views -log-level warn

static/js/htmx.min.js: node_modules/.installed
	@mkdir -p static/js
	cp node_modules/htmx.org/dist/htmx.min.js $@

static/css/app.css: node_modules/.installed $(CSS_INPUTS)
	npx tailwindcss -c tailwind.config.js -i views/styles/input.css -o $@ --minify 2>&1 | grep -v 'Done in' || true
	@test -s $@

.PHONY: css
css: static/css/app.css static/js/htmx.min.js ## Build the Tailwind CSS and copy htmx into static/

.PHONY: assets
assets: deps generate css

.PHONY: build
build: assets ## Build the server binary into bin/byoc
	$(GO) build -o $(BIN) .

## ---- Running ----

.PHONY: run
run: build ## Start PostgreSQL (unless DATABASE_URL is set), migrate and serve on http://localhost:$(PORT)
	@$(DB_START)
	@echo "BYOC is starting on http://localhost:$(PORT) (Ctrl-C stops it; the private PostgreSQL keeps running until 'make db-stop')"
	@DATABASE_URL="$${DATABASE_URL:-$$(db/pg.sh url)}" PORT=$(PORT) ./$(BIN) serve

.PHONY: demo
demo: build ## Like run, with every provider replaced by a local stand-in (try every flow offline)
	@$(DB_START)
	@echo "BYOC (sandbox) is starting on http://localhost:$(PORT) (Ctrl-C stops it; the private PostgreSQL keeps running until 'make db-stop')"
	@DATABASE_URL="$${DATABASE_URL:-$$(db/pg.sh url)}" PORT=$(PORT) ./$(BIN) demo

.PHONY: migrate
migrate: build ## Apply pending migrations (make migrate-down rolls back the last one)
	@$(DB_START)
	@DATABASE_URL="$${DATABASE_URL:-$$(db/pg.sh url)}" ./$(BIN) migrate up

.PHONY: migrate-down
migrate-down: build ## Roll back the most recent migration
	@DATABASE_URL="$${DATABASE_URL:-$$(db/pg.sh url)}" ./$(BIN) migrate down

.PHONY: db-start
db-start: ## Start the private PostgreSQL cluster (under .data/)
	@db/pg.sh start
	@db/pg.sh status

.PHONY: db-stop
db-stop: ## Stop the private PostgreSQL cluster
	@db/pg.sh stop

.PHONY: db-reset
db-reset: ## Stop the private cluster and delete its data
	@db/pg.sh reset

## ---- Smoke ----

.PHONY: smoke
smoke: ## The end-to-end API run against a server: make smoke URL=http://127.0.0.1:3000 (make demo serves one on the stand-ins)
	@test -n "$(URL)" || { echo "usage: make smoke URL=http://host:port"; exit 1; }
	$(GO) run ./e2e/smoke -url "$(URL)"

## ---- Cluster ----

CLUSTER_DIR := .data/cluster

.PHONY: cluster
cluster: build haproxy ## Three instances behind HAProxy on the private PostgreSQL (database byoc_cluster), providers stood in; Ctrl-C stops it all
	@$(GO) build -o bin/byoc-cluster ./e2e/cluster
	@BYOC_PG_DB=byoc_cluster $(WITH_DB) ./bin/byoc-cluster -bin $(BIN) -data $(CLUSTER_DIR)

.PHONY: haproxy
haproxy: ## Make sure HAProxy is installed (for make cluster, the cluster tests and the fault drills)
	@if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's haproxy for the cluster..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; \
		else \
			echo "HAProxy not found. Install it (sudo apt-get install haproxy)."; exit 1; \
		fi; \
	fi

.PHONY: test-cluster
test-cluster: haproxy ## The cluster tests: three instances behind HAProxy (needs DATABASE_URL; make test provides it)
	@test -n "$$DATABASE_URL" || { echo "DATABASE_URL is not set: use 'make test'"; exit 1; }
	$(GO) vet -tags cluster ./e2e/cluster/
	BYOC_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -tags cluster -v ./e2e/cluster/ 2>&1 | \
		grep -vE '^=== (RUN|PAUSE|CONT)' ; exit $${PIPESTATUS[0]}

## ---- Benchmarks ----

ORGS      ?= 10000
BENCH_DIR := .data/bench

.PHONY: bench
bench: build ## Benchmarks, minutes: seed ORGS orgs (default 10000), serve them, load them from a separate process; table in .data/bench/results.md
	@BYOC_PG_STATEMENTS=1 BYOC_PG_DB=byoc_bench $(WITH_DB) $(MAKE) --no-print-directory bench-run

.PHONY: bench-run
bench-run:
	@test -n "$$DATABASE_URL" || { echo "DATABASE_URL is not set: use 'make bench'"; exit 1; }
	$(GO) build -o bin/byoc-bench ./e2e/bench
	DATA_DIR=$(BENCH_DIR) ./$(BIN) seed -orgs $(ORGS)
	./bin/byoc-bench -bin $(BIN) -data $(BENCH_DIR) $(BENCH_FLAGS)

## ---- Fault drills ----

DRILLS_OUT := .data/drills/results.md

.PHONY: drills
drills: haproxy ## Fault drills (a minute): PostgreSQL stopped under load, a slow database, concurrent saves; table in .data/drills/results.md
	@rm -f $(DRILLS_OUT)
	$(GO) test -count=1 -timeout 15m ./e2e/drills/ -args -drills.full -drills.out $(CURDIR)/$(DRILLS_OUT)
	@cat $(DRILLS_OUT)

## ---- Quality ----

.PHONY: lint
lint: generate ## go vet and a gofmt check
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	@if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- '*_templ.go'; then \
		echo "The committed templ output is stale: run 'make generate' and commit the result."; git diff --stat -- '*_templ.go'; exit 1; fi
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

.PHONY: test
test: build ## Everything: lint, Go tests on a real PostgreSQL, fuzz smoke runs, browser tests
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory test-rules
	@BYOC_PG_FAST=1 $(WITH_DB) $(MAKE) --no-print-directory test-go test-fuzz e2e-run
	@BYOC_PG_FAST=1 $(WITH_DB) $(MAKE) --no-print-directory test-cluster

.PHONY: test-go
test-go: cc haproxy ## Go unit and integration tests with the race detector (needs DATABASE_URL; make test provides it)
	@test -n "$$DATABASE_URL" || { echo "DATABASE_URL is not set: use 'make test'"; exit 1; }
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

.PHONY: cc
cc: ## Make sure the C compiler the race detector needs is installed
	@if ! command -v $${CC:-gcc} >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's gcc for the race detector..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; \
		else \
			echo "The race detector needs a C compiler. Install it (sudo apt-get install gcc) or set CC."; exit 1; \
		fi; \
	fi

# A count of inputs rather than a duration: with a duration, Go 1.26's fuzz
# coordinator can report its own deadline as a failure ("context deadline
# exceeded", no input written) when the machine is busy.
FUZZTIME ?= 20000x
.PHONY: test-fuzz
test-fuzz: ## Run each fuzz target briefly (FUZZTIME inputs, default 20000x; a duration such as 30s works too)
	@set -e; for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)' $$dir/*_test.go 2>/dev/null | awk '{print $$2}'); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			out=$$($(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out" | tail -40; exit 1; }; \
		done; \
	done

# Debian's prometheus package brings promtool. Its services are kept from
# starting while it installs (policy-rc.d), and nothing here starts them.
.PHONY: promtool
promtool: ## Make sure promtool (Debian's prometheus package) is installed
	@if ! command -v promtool >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's prometheus package for promtool..."; \
			policy=/usr/sbin/policy-rc.d; \
			if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy && chmod +x $$policy; trap "rm -f $$policy" EXIT; fi; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
		else \
			echo "promtool not found. Install it (sudo apt-get install --no-install-recommends prometheus)."; exit 1; \
		fi; \
	fi

.PHONY: test-rules
test-rules: promtool ## Check the Prometheus alert rules and run their unit tests
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

.PHONY: chromium
chromium: ## Make sure a Chromium for the browser tests is installed
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's chromium for the browser tests..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "Chromium not found at $(CHROMIUM). Install it (sudo apt-get install chromium) or set CHROMIUM_PATH."; exit 1; \
		fi; \
	fi

.pwdriver/package: node_modules/.installed
	@mkdir -p .pwdriver
	@ln -sfn "$$(command -v node)" .pwdriver/node
	@ln -sfn ../node_modules/playwright-core .pwdriver/package

.PHONY: e2e
e2e: build ## Browser tests only (starts PostgreSQL when needed)
	@BYOC_PG_FAST=1 $(WITH_DB) $(MAKE) --no-print-directory e2e-run

# The browser tests' package only: e2e/smoke and e2e/bench have no browser
# tests, and test-go has run them already.
.PHONY: e2e-run
e2e-run: chromium .pwdriver/package
	BYOC_BIN=$(CURDIR)/$(BIN) CHROMIUM_PATH=$(CHROMIUM) PLAYWRIGHT_DRIVER_PATH=$(CURDIR)/.pwdriver \
		$(GO) test -count=1 -tags e2e ./e2e/

.PHONY: clean
clean: ## Remove build output (keeps the database and generated secrets)
	rm -rf bin static/css/app.css static/js/htmx.min.js .pwdriver
