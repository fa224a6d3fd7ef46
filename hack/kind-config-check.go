// kind-config-check: what `kind create cluster --config FILE --name NAME` makes of a config before it
// needs Docker, with kind's own code: the config loaded strictly (unknown fields fail), defaulted and
// validated as kind does it, then each node's kubeadm configuration rendered and patched with the
// config's kubeadmConfigPatches exactly as kind writes /kind/kubeadm.conf on the node.
//
// hack/kind.sh check-config builds it inside a scratch copy of kind's Go module at KIND_VERSION
// (kind's config code is internal to that module) and caches the binary; no Docker is involved.
//
//	kind-config-check FILE NAME [KUBERNETES_VERSION]
//
// KUBERNETES_VERSION (e.g. v1.35.8) stands in for the node image's /kind/version; by default it is
// read from each node's image tag (kind's default image when the config names none). stdout: a JSON
// list, one object per node: name, role, image, labels and kubeadm (the patched kubeadm.conf).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"

	"sigs.k8s.io/kind/pkg/cluster/constants"
	"sigs.k8s.io/kind/pkg/cluster/internal/kubeadm"
	"sigs.k8s.io/kind/pkg/cluster/internal/providers/common"
	"sigs.k8s.io/kind/pkg/internal/apis/config/encoding"
	"sigs.k8s.io/kind/pkg/internal/patch"
)

type node struct {
	Name    string            `json:"name"`
	Role    string            `json:"role"`
	Image   string            `json:"image"`
	Labels  map[string]string `json:"labels"`
	Kubeadm string            `json:"kubeadm"`
}

var imageVersion = regexp.MustCompile(`:(v[0-9]+\.[0-9]+\.[0-9]+[^@]*)`)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kind-config-check: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 3 || len(os.Args) > 4 {
		fail("usage: kind-config-check FILE NAME [KUBERNETES_VERSION]")
	}
	cfg, err := encoding.Load(os.Args[1])
	if err != nil {
		fail("%s: %v", os.Args[1], err)
	}
	cfg.Name = os.Args[2] // as `kind create cluster --name` does, before validating
	if err := cfg.Validate(); err != nil {
		fail("%s: %v", os.Args[1], err)
	}
	namer := common.MakeNodeNamer(cfg.Name)
	out := []node{}
	for i := range cfg.Nodes {
		n := &cfg.Nodes[i]
		name := namer(string(n.Role))
		version := ""
		if len(os.Args) == 4 {
			version = os.Args[3]
		} else if m := imageVersion.FindStringSubmatch(n.Image); m != nil {
			version = m[1]
		} else {
			fail("node %s: no Kubernetes version in image %q; pass one", name, n.Image)
		}
		data := kubeadm.ConfigData{
			NodeProvider:         "docker",
			ClusterName:          cfg.Name,
			ControlPlaneEndpoint: cfg.Name + "-control-plane:6443",
			APIBindPort:          common.APIServerInternalPort,
			APIServerAddress:     cfg.Networking.APIServerAddress,
			Token:                kubeadm.Token,
			PodSubnet:            cfg.Networking.PodSubnet,
			KubeProxyMode:        string(cfg.Networking.KubeProxyMode),
			ServiceSubnet:        cfg.Networking.ServiceSubnet,
			IPFamily:             cfg.Networking.IPFamily,
			FeatureGates:         cfg.FeatureGates,
			RuntimeConfig:        cfg.RuntimeConfig,
			KubernetesVersion:    version,
			NodeName:             name,
			NodeAddress:          "172.18.0.2", // any address: only node-ip and advertiseAddress show it
			ControlPlane:         string(n.Role) == constants.ControlPlaneNodeRoleValue,
		}
		if len(n.Labels) > 0 {
			pairs := []string{}
			for k, v := range n.Labels {
				pairs = append(pairs, k+"="+v)
			}
			data.NodeLabels = strings.Join(pairs, ",")
		}
		rendered, err := kubeadm.Config(data)
		if err != nil {
			fail("node %s: rendering kubeadm config: %v", name, err)
		}
		rendered, err = patch.KubeYAML(rendered, cfg.KubeadmConfigPatches, cfg.KubeadmConfigPatchesJSON6902)
		if err != nil {
			fail("node %s: the cluster's kubeadmConfigPatches: %v", name, err)
		}
		if len(n.KubeadmConfigPatches) > 0 || len(n.KubeadmConfigPatchesJSON6902) > 0 {
			rendered, err = patch.KubeYAML(rendered, n.KubeadmConfigPatches, n.KubeadmConfigPatchesJSON6902)
			if err != nil {
				fail("node %s: its kubeadmConfigPatches: %v", name, err)
			}
		}
		labels := n.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		out = append(out, node{Name: name, Role: string(n.Role), Image: n.Image, Labels: labels, Kubeadm: rendered})
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fail("%v", err)
	}
}
