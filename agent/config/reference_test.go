package config

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var updateReference = flag.Bool("update-reference", false, "rewrite docs/config-reference.md from the config types")

// referencePath is the configuration reference, generated from the types.
var referencePath = filepath.Join("..", "..", "docs", "config-reference.md")

// TestConfigReference: docs/config-reference.md is what the config types
// and their doc comments say, key by key, so it cannot drift from what the
// agent reads. Rewrite it with
//
//	go test ./agent/config -run TestConfigReference -update-reference
func TestConfigReference(t *testing.T) {
	got := renderReference(t)
	if *updateReference {
		if err := os.WriteFile(referencePath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v (run: go test ./agent/config -run TestConfigReference -update-reference)", err)
	}
	if string(want) != got {
		t.Errorf("%s is not what the config types say: run go test ./agent/config -run TestConfigReference -update-reference and commit it", referencePath)
	}
}

// refField is one field of a config struct as its source declares it.
type refField struct {
	goName, doc string
}

// structDocs reads every struct type of this package's source: its fields
// in order, each with its doc comment (a field without one
// shares the comment of the field before it, as in "A and B are …").
func structDocs(t *testing.T) map[string][]refField {
	t.Helper()
	fset := token.NewFileSet()
	out := map[string][]refField{}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			prev := ""
			for _, fld := range st.Fields.List {
				doc := strings.Join(strings.Fields(fld.Doc.Text()), " ")
				if doc == "" {
					doc = prev
				}
				prev = doc
				for _, id := range fld.Names {
					out[ts.Name.Name] = append(out[ts.Name.Name], refField{goName: id.Name, doc: doc})
				}
			}
			return false
		})
	}
	return out
}

// renderReference is the reference: one table per section, one row per
// key, in the order the types declare them.
func renderReference(t *testing.T) string {
	docs := structDocs(t)
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n" +
		"Every key of `/etc/etcd-agent/config.yaml`, generated from the types in `agent/config` and\n" +
		"their comments (`go test ./agent/config -run TestConfigReference -update-reference`; the test\n" +
		"fails when this file and the types differ). \"Zero\" is the value the agent uses when the key is\n" +
		"absent. Durations take `ms`, `s`, `m`, `h` and `d` (`30s`, `7d`); sizes take `KiB`, `MiB`, `GiB`, `TiB`\n" +
		"or a byte count. `etcd-agent config check` reports every problem in a file at once, each with\n" +
		"its key, line and fix; [configuration.md](configuration.md) has a complete example.\n")
	var section func(prefix string, typ reflect.Type, depth int)
	section = func(prefix string, typ reflect.Type, depth int) {
		var rows []string
		type sub struct {
			path string
			typ  reflect.Type
		}
		var subs []sub
		fields := docs[typ.Name()]
		for i := range typ.NumField() {
			sf := typ.Field(i)
			key, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if key == "" || key == "-" {
				continue
			}
			path := key
			if prefix != "" {
				path = prefix + "." + key
			}
			doc := ""
			for _, f := range fields {
				if f.goName == sf.Name {
					doc = f.doc
				}
			}
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft.PkgPath() == typ.PkgPath() && ft.Name() != "Duration" {
				subs = append(subs, sub{path, ft})
				if prefix != "" {
					rows = append(rows, fmt.Sprintf("| `%s` | section | %s |", path, escape(doc)))
				}
				continue
			}
			rows = append(rows, fmt.Sprintf("| `%s` | %s | %s |", path, typeName(sf.Type), escape(doc)))
		}
		if len(rows) > 0 {
			fmt.Fprintf(&b, "\n%s `%s`\n\n| key | type | meaning |\n|---|---|---|\n%s\n", strings.Repeat("#", depth+1), prefix, strings.Join(rows, "\n"))
		}
		for _, s := range subs {
			section(s.path, s.typ, min(depth+1, 3))
		}
	}
	section("", reflect.TypeFor[Config](), 0)
	return b.String()
}

// typeName is what a value of t looks like in YAML.
func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[Duration]():
		return "duration"
	case t == reflect.TypeFor[Size]():
		return "size"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	case reflect.Map:
		return "map of " + typeName(t.Key()) + " to " + typeName(t.Elem())
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.Struct:
		return "mapping"
	}
	return t.Kind().String()
}

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
