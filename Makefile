# Turbine: `make serve` and `make test` do all the set-up on a fresh Debian 12 machine.
BUILD_DIR ?= build
JOBS ?= 2
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: deps configure build test bench serve clean

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j$(JOBS)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 900

bench: build
	@bash bench/run.sh $(BUILD_DIR)

serve: build
	@$(BUILD_DIR)/bin/turbine serve $(ARGS)

clean:
	rm -rf $(BUILD_DIR)
