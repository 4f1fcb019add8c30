"""The GraphQL documents the connector sends, as Shopify's Admin reference
spells them (``reference/channel-formats.md`` Part A).

Each is named: the name words errors and keys the cost estimate. The
productSet selection asks for as many variants as the listing has (the write
replaces the product's variant list, so there are no more), which keeps the
requested cost, and so the wait before the call, as small as it can be.
"""

from __future__ import annotations

# Where the hub writes its product key (a custom id: a metafield definition
# of type ``id``, unique per product).
NAMESPACE = "s2s"
KEY = "product_key"

PRODUCT_SET = """
mutation productSet($identifier: ProductSetIdentifiers, $input: ProductSetInput!, $first: Int!) {
  productSet(identifier: $identifier, input: $input, synchronous: true) {
    product {
      id
      variants(first: $first) {
        nodes { id sku inventoryItem { id } }
        pageInfo { hasNextPage endCursor }
      }
    }
    userErrors { code field message }
  }
}
"""

# Bulk lines carry only ``identifier`` and ``input``; one connection field is allowed.
BULK_PRODUCT_SET = """
mutation productSet($identifier: ProductSetIdentifiers, $input: ProductSetInput!) {
  productSet(identifier: $identifier, input: $input, synchronous: true) {
    product {
      id
      variants(first: 250) {
        nodes { id sku inventoryItem { id } }
        pageInfo { hasNextPage endCursor }
      }
    }
    userErrors { code field message }
  }
}
"""

MORE_VARIANTS = """
query moreVariants($id: ID!, $after: String) {
  product(id: $id) {
    variants(first: 250, after: $after) {
      nodes { id sku inventoryItem { id } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

FIND = """
query findProduct($identifier: ProductIdentifierInput!, $location: ID!) {
  productByIdentifier(identifier: $identifier) {
    id
    variants(first: 100) {
      nodes {
        id sku
        inventoryItem {
          id
          inventoryLevel(locationId: $location) {
            quantities(names: ["available"]) { name quantity }
          }
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

FIND_MORE = """
query findMoreVariants($id: ID!, $after: String, $location: ID!) {
  product(id: $id) {
    variants(first: 100, after: $after) {
      nodes {
        id sku
        inventoryItem {
          id
          inventoryLevel(locationId: $location) {
            quantities(names: ["available"]) { name quantity }
          }
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

SHOP = """
query shopAndLocations {
  shop { name myshopifyDomain }
  location { id name isActive }
  locations(first: 50) { nodes { id name isActive } }
}
"""

DEFINE_KEY = """
mutation defineProductKey($definition: MetafieldDefinitionInput!) {
  metafieldDefinitionCreate(definition: $definition) {
    createdDefinition { id }
    userErrors { code field message }
  }
}
"""

# Up to 2025-10: no compare-and-swap (ignoreCompareQuantity on the input).
SET_STOCK = """
mutation setStock($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""

# From 2026-01: changeFromQuantity null on each quantity, and an idempotency
# key (required from 2026-04), the same key for a resend of the same request.
SET_STOCK_IDEMPOTENT = """
mutation setStock($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""

STAGE = """
mutation stageUpload($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) {
    stagedTargets { url resourceUrl parameters { name value } }
    userErrors { field message }
  }
}
"""

RUN_BULK = """
mutation runBulk($mutation: String!, $path: String!) {
  bulkOperationRunMutation(mutation: $mutation, stagedUploadPath: $path) {
    bulkOperation { id status }
    userErrors { code field message }
  }
}
"""

BULK_STATUS = """
query bulkStatus($id: ID!) {
  node(id: $id) {
    ... on BulkOperation { id status errorCode objectCount url partialDataUrl }
  }
}
"""

CURRENT_BULK = """
query currentBulk {
  currentBulkOperation(type: MUTATION) { id status errorCode objectCount url partialDataUrl }
}
"""
