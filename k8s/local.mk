# Targets for the images and local clusters (docs/deploy.md), included by the Makefile
# (`include k8s/local.mk`); `make help` lists them with the others.

CLUSTER ?= accident-triage
NAMESPACE ?= accident-triage
RELEASE ?= accident-triage
IMAGE_TAG ?= $(shell awk '/^appVersion:/ {gsub(/"/, "", $$2); print $$2}' helm/accident-triage/Chart.yaml)
SCORER_IMAGE ?= accident-triage-scorer:$(IMAGE_TAG)
JOBS_IMAGE ?= accident-triage-jobs:$(IMAGE_TAG)
HELM_INSTALL = helm upgrade --install $(RELEASE) helm/accident-triage --namespace $(NAMESPACE) \
	--create-namespace -f k8s/values-local.yaml --wait --timeout 15m \
	--set scorer.image.tag=$(IMAGE_TAG) --set jobsImage.tag=$(IMAGE_TAG)

.PHONY: images
images: ## Build the scorer and jobs images (Dockerfile targets scorer, jobs)
	docker build --target scorer -t $(SCORER_IMAGE) .
	docker build --target jobs -t $(JOBS_IMAGE) .

.PHONY: docker-smoke
docker-smoke: venv ## Offline image build + scorer run as CI does it (.ci/docker-smoke.sh)
	bash .ci/docker-smoke.sh

.PHONY: chart-test
chart-test: venv ## helm lint, render, kubernetes-validate, checkov on the chart (tests/helm)
	$(BIN)/pytest tests/helm -q

.PHONY: kind-up
kind-up: ## Create the kind cluster (k8s/kind-config.yaml) with metrics-server for the HPA
	kind create cluster --config k8s/kind-config.yaml
	kubectl apply -k k8s/metrics-server
	kubectl -n kube-system rollout status deployment/metrics-server --timeout 3m

.PHONY: kind-load
kind-load: images ## Build the images and load them into the kind cluster
	kind load docker-image $(SCORER_IMAGE) $(JOBS_IMAGE) --name $(CLUSTER)

.PHONY: kind-deploy
kind-deploy: kind-load ## Install/upgrade the chart on kind and run its test
	$(HELM_INSTALL)
	helm -n $(NAMESPACE) test $(RELEASE)

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	kind delete cluster --name $(CLUSTER)

.PHONY: minikube-up
minikube-up: ## Start the minikube profile with the metrics-server addon
	minikube start -p $(CLUSTER) --cpus 4 --memory 8g
	minikube -p $(CLUSTER) addons enable metrics-server

.PHONY: minikube-load
minikube-load: images ## Build the images and load them into minikube
	minikube -p $(CLUSTER) image load $(SCORER_IMAGE)
	minikube -p $(CLUSTER) image load $(JOBS_IMAGE)

.PHONY: minikube-deploy
minikube-deploy: minikube-load ## Install/upgrade the chart on minikube and run its test
	$(HELM_INSTALL)
	helm -n $(NAMESPACE) test $(RELEASE)

.PHONY: minikube-down
minikube-down: ## Delete the minikube profile
	minikube delete -p $(CLUSTER)
