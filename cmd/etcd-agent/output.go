package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// printDoc writes v as JSON (indented two spaces) or as YAML. The YAML is
// the JSON document itself (through a generic value), so its keys are the
// JSON's and a script can switch between the two.
func printDoc(w io.Writer, format outputFormat, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	if format != formatYAML {
		_, err = w.Write(append(b, '\n'))
		return err
	}
	out, err := jsonToYAML(b)
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// jsonToYAML re-encodes a JSON document as YAML; numbers stay numbers,
// integers exact.
func jsonToYAML(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("re-read JSON: %w", err)
	}
	doc = plainNumbers(doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// plainNumbers turns every json.Number in v into an int64 or a float64:
// yaml.v3 would write a json.Number as a quoted string.
func plainNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64() // JSON's own number syntax: cannot fail
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = plainNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = plainNumbers(e)
		}
	}
	return v
}
