# chatd: make help lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/chatd
ADDR ?= :8080
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT ?= 14m

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the server at bin/chatd, the ops CLI at bin/chatctl and the load tool at bin/chatload
	$(GO) build -o $(BIN) ./cmd/chatd
	$(GO) build -o bin/chatctl ./cmd/chatctl
	$(GO) build -o bin/chatload ./cmd/chatload

run: build ## run the server with embedded defaults (dev mode, no external service)
	@case "$(ADDR)" in :*) url="localhost$(ADDR)";; *) url="$(ADDR)";; esac; \
	  echo "chatd: open http://$$url/ (Ctrl-C stops it)"
	./$(BIN) --addr $(ADDR)

deps: ## install the system packages the tests need, when missing
	@./scripts/deps.sh

test: deps ## run every test with -race (fuzz seed corpora included)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

bench: ## run the benchmarks and print figures (never fails on speed)
	@echo "machine: $$(nproc) cores, $$(free -g | awk '/Mem:/{print $$2}') GiB, $$(uname -m), $$($(GO) version)"
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./...

loadtest: build ## the seed's table at 500/1000/5000 users with cmd/chatload (SCENARIO=seed; see scripts/loadtest.sh)
	./scripts/loadtest.sh $${SCENARIO:-seed}

fuzz: ## fuzz every decoder for a while each (FUZZTIME=30s)
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeClient$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzParseCursor$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzValidRoom$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzValidUser$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzCleanText$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzCleanDisplayName$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzDevUserID$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/auth
	$(GO) test -run '^$$' -fuzz '^FuzzUserSubscription$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/httpx
	$(GO) test -run '^$$' -fuzz '^FuzzQueryParams$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/httpx
	$(GO) test -run '^$$' -fuzz '^FuzzLaneHead$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/httpx
	$(GO) test -run '^$$' -fuzz '^FuzzRepeat$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/httpx
	$(GO) test -run '^$$' -fuzz '^FuzzRedeem$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/auth
	$(GO) test -run '^$$' -fuzz '^FuzzTicketPayload$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/auth
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/auth
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyClaims$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/auth
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/bolt
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/redis
	$(GO) test -run '^$$' -fuzz '^FuzzParseFile$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./featureflags
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePlans$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./featureflags/rollout
	$(GO) test -run '^$$' -fuzz '^FuzzStartRequest$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./featureflags/rollout
	$(GO) test -run '^$$' -fuzz '^FuzzEventReader$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/client
	$(GO) test -run '^$$' -fuzz '^FuzzPollAnswer$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/client
	$(GO) test -run '^$$' -fuzz '^FuzzParseSubscription$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/httpx
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFrameFast$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeReused$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/client
	$(GO) test -run '^$$' -fuzz '^FuzzParseRTT$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/httpx
	$(GO) test -run '^$$' -fuzz '^FuzzSniff$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/files
	$(GO) test -run '^$$' -fuzz '^FuzzCleanName$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/files
	$(GO) test -run '^$$' -fuzz '^FuzzJPEGOrientation$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./core/files
	$(GO) test -run '^$$' -fuzz '^FuzzDisposition$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/files
	$(GO) test -run '^$$' -fuzz '^FuzzDeflateOffer$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/ws
	$(GO) test -run '^$$' -fuzz '^FuzzFrameMeter$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/ws
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrames$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/wsinflate
	$(GO) test -run '^$$' -fuzz '^FuzzInflate$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/inflate
	$(GO) test -run '^$$' -fuzz '^FuzzUndeflate$$' -fuzztime $${FUZZTIME:-30s} -fuzzminimizetime 0 ./transports/client

cluster: build ## a local cluster: redis-server on :6390 and three nodes on 127.0.0.1:8081-8083; Ctrl-C stops it (scripts/cluster.sh)
	./scripts/cluster.sh

layers: ## check that dependencies point inward
	@./scripts/layers.sh

check: layers ## fmt, vet, staticcheck, go mod tidy, then test
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@cp go.mod /tmp/go.mod.bak && cp go.sum /tmp/go.sum.bak && $(GO) mod tidy && \
	  if ! diff -q go.mod /tmp/go.mod.bak >/dev/null || ! diff -q go.sum /tmp/go.sum.bak >/dev/null; then \
	    echo "go mod tidy changed go.mod or go.sum"; exit 1; fi
	$(MAKE) test

clean: ## remove build output and the default data directory
	rm -rf bin data

.PHONY: help build run deps test bench loadtest fuzz cluster layers check clean
