package butane

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// The subset of the fcos Butane schema this package writes. Field order
// here is the order in the rendered YAML.

type buConfig struct {
	Variant  string      `yaml:"variant"`
	Version  string      `yaml:"version"`
	Ignition *buIgnition `yaml:"ignition,omitempty"`
	Passwd   *buPasswd   `yaml:"passwd,omitempty"`
	Storage  *buStorage  `yaml:"storage,omitempty"`
	Systemd  *buSystemd  `yaml:"systemd,omitempty"`
}

type buIgnition struct {
	Config buIgnitionConfig `yaml:"config"`
}

type buIgnitionConfig struct {
	Merge []buResource `yaml:"merge"`
}

type buPasswd struct {
	Users []buUser `yaml:"users"`
}

type buUser struct {
	Name              string   `yaml:"name"`
	Groups            []string `yaml:"groups,omitempty"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
}

type buStorage struct {
	Directories []buNode `yaml:"directories,omitempty"`
	Files       []buFile `yaml:"files,omitempty"`
	Links       []buLink `yaml:"links,omitempty"`
}

type buOwner struct {
	Name string `yaml:"name"`
}

// buNode is what directories, files and links share.
type buNode struct {
	Path  string   `yaml:"path"`
	Mode  mode     `yaml:"mode,omitempty"`
	User  *buOwner `yaml:"user,omitempty"`
	Group *buOwner `yaml:"group,omitempty"`
}

type buFile struct {
	buNode   `yaml:",inline"`
	Contents *buResource `yaml:"contents,omitempty"`
}

type buLink struct {
	buNode `yaml:",inline"`
	Target string `yaml:"target"`
}

type buResource struct {
	Source       string          `yaml:"source,omitempty"`
	Inline       string          `yaml:"inline,omitempty"`
	Verification *buVerification `yaml:"verification,omitempty"`
}

type buVerification struct {
	Hash string `yaml:"hash"`
}

type buSystemd struct {
	Units []buUnit `yaml:"units"`
}

type buUnit struct {
	Name string `yaml:"name"`
	// Enabled nil leaves the unit's enablement alone: false would make
	// Ignition preset it disabled.
	Enabled  *bool  `yaml:"enabled,omitempty"`
	Contents string `yaml:"contents"`
}

// mode is a file mode written in octal (0644), as Butane configs are.
type mode int

// MarshalYAML implements yaml.Marshaler.
func (m mode) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprintf("0%o", int(m))}, nil
}

// owned returns node fields owned by user (and the group of the same name).
func owned(path string, m mode, user string) buNode {
	return buNode{Path: path, Mode: m, User: &buOwner{Name: user}, Group: &buOwner{Name: user}}
}

// marshal renders c as Butane YAML with a header comment.
func (c buConfig) marshal(header string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode butane: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode butane: %w", err)
	}
	return b.Bytes(), nil
}
